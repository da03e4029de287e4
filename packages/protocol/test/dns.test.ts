import { describe, expect, it } from 'vitest';
import {
  CreateDnsRecordRequest,
  DnsDomain,
  MAX_DNS_DOMAIN_LENGTH,
  NetworkMap,
  SetDnsDomainRequest,
  applyMapPatch,
} from '../src/index.js';
import { map } from './fixtures.js';

describe('DNS schemas', () => {
  it('accepts domains made of DNS labels and refuses anything else', () => {
    for (const d of ['demo', 'corp.internal', 'a-b.c9', 'x'.repeat(63)])
      expect(DnsDomain.safeParse(d).success, d).toBe(true);
    for (const d of [
      '',
      'Demo',
      'demo.',
      '.demo',
      'a..b',
      '-demo',
      'demo-',
      'de_mo',
      'dé.mo',
      'x'.repeat(64),
      `${'a.'.repeat(Math.ceil(MAX_DNS_DOMAIN_LENGTH / 2))}a`,
    ])
      expect(DnsDomain.safeParse(d).success, d).toBe(false);
  });

  it('takes a custom record as a DNS label and one IP address', () => {
    expect(CreateDnsRecordRequest.safeParse({ name: 'printer', ip: '192.168.100.9' }).success).toBe(
      true,
    );
    expect(CreateDnsRecordRequest.safeParse({ name: 'printer', ip: 'fd00::9' }).success).toBe(true);
    expect(CreateDnsRecordRequest.safeParse({ name: 'Printer', ip: '192.168.100.9' }).success).toBe(
      false,
    );
    expect(CreateDnsRecordRequest.safeParse({ name: 'a.b', ip: '192.168.100.9' }).success).toBe(
      false,
    );
    expect(CreateDnsRecordRequest.safeParse({ name: 'printer', ip: 'printer.lan' }).success).toBe(
      false,
    );
    expect(SetDnsDomainRequest.safeParse({ domain: 'corp', force: true }).success).toBe(true);
  });

  it('reads maps with and without dnsRecords, and a patch carries them with the network', () => {
    const old = map(1, []);
    expect(NetworkMap.parse(old).network.dnsRecords).toBeUndefined();
    const records = [
      {
        name: 'printer',
        dnsName: 'printer.demo',
        kind: 'custom' as const,
        addressV4: '192.168.100.9',
        addressV6: null,
      },
    ];
    const withRecords = { ...old, network: { ...old.network, dnsRecords: records } };
    expect(NetworkMap.parse(withRecords).network.dnsRecords).toEqual(records);
    const next = applyMapPatch(old, {
      fromVersion: 1,
      version: 2,
      network: withRecords.network,
      upsertPeers: [],
      removePeerIds: [],
    });
    expect(next?.network.dnsRecords).toEqual(records);
    const bad = { ...old, network: { ...old.network, dnsRecords: [{ ...records[0], kind: 'x' }] } };
    expect(NetworkMap.safeParse(bad).success).toBe(false);
  });
});
