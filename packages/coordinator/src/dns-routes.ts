/**
 * The admin routes of DNS names (store/dns.ts): a network's domain and names, custom records,
 * node renames. Registered inside the admin scope of server.ts, so they need the admin token.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
  API_PREFIX,
  CreateDnsRecordRequest,
  Id,
  RenameNodeRequest,
  SetDnsDomainRequest,
} from '@wiremesh/protocol';
import { parseBody } from './api-error.js';
import type { Store } from './store/index.js';

const NetworkParam = z.object({ network: Id });
const RecordParam = z.object({ network: Id, record: Id });
const IdParam = z.object({ id: Id });

/** Adds the DNS routes to `admin` (a scope whose hook already checked the admin token). */
export function dnsRoutes(admin: FastifyInstance, store: Store): void {
  const dns = store.dns;
  const network = (params: unknown): string => parseBody(NetworkParam, params, 'path').network;

  admin.get(`${API_PREFIX}/networks/:network/dns`, async (req) => dns.get(network(req.params)));
  admin.put(`${API_PREFIX}/networks/:network/dns`, async (req) =>
    dns.setDomain(network(req.params), parseBody(SetDnsDomainRequest, req.body)),
  );
  admin.get(`${API_PREFIX}/networks/:network/dns/records`, async (req) =>
    dns.listRecords(network(req.params)),
  );
  admin.post(`${API_PREFIX}/networks/:network/dns/records`, async (req, reply) =>
    reply
      .code(201)
      .send(await dns.addRecord(network(req.params), parseBody(CreateDnsRecordRequest, req.body))),
  );
  admin.delete(`${API_PREFIX}/networks/:network/dns/records/:record`, async (req, reply) => {
    const p = parseBody(RecordParam, req.params, 'path');
    await dns.removeRecord(p.network, p.record);
    return reply.code(204).send();
  });
  admin.put(`${API_PREFIX}/nodes/:id/name`, async (req) =>
    dns.renameNode(
      parseBody(IdParam, req.params, 'path').id,
      parseBody(RenameNodeRequest, req.body).name,
    ),
  );
}
