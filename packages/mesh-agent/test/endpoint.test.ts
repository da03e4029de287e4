// One endpoint shape across the wire schema, the engine and the agent: what the protocol parses
// goes into wg-core (and wg-tun's sockets) as it is, and what the engine reports goes on the wire.
import { Endpoint as WireEndpoint, formatEndpoint, parseEndpoint } from '@wiremesh/protocol';
import { endpointBytes, type Endpoint as EngineEndpoint } from '@wiremesh/wg-core';
import { describe, expect, it } from 'vitest';

describe('Endpoint', () => {
  it('is one shape: a parsed wire endpoint is an engine endpoint and back', () => {
    const wire = parseEndpoint('[2001:db8::1]:51820');
    expect(wire).not.toBeNull();
    const engine: EngineEndpoint = wire!;
    expect(Buffer.from(endpointBytes(engine)).toString('hex')).toBe(
      '20010db8000000000000000000000001ca6c',
    );
    const back = WireEndpoint.parse(engine);
    expect(formatEndpoint(back)).toBe('[2001:db8::1]:51820');
  });
});
