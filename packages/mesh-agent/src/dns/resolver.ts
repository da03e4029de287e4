/**
 * The answer to one DNS query (RFC 1035 §4.1) from a DnsTable: A and AAAA for the mesh names,
 * NXDOMAIN for other names in the domain (with the zone's SOA, RFC 2308 §3), REFUSED outside it.
 * Messages are decoded and encoded by dns-packet; untrusted bytes never throw out of here.
 */
import * as packet from 'dns-packet';
import {
  DNS_HEADER_BYTES,
  DNS_UDP_MAX_BYTES,
  FLAG_QR,
  MESH_TTL_S,
  OPCODE_MASK,
  OPCODE_QUERY,
  OPCODE_SHIFT,
  RCODE_FORMERR,
  RCODE_NOERROR,
  RCODE_NOTIMP,
  RCODE_NXDOMAIN,
  RCODE_REFUSED,
  SOA_EXPIRE_S,
  SOA_MINIMUM_S,
  SOA_REFRESH_S,
  SOA_RETRY_S,
} from './constants.js';
import type { DnsTable } from './records.js';

/** What became of a query (counted by the server). */
export type Outcome =
  | 'answer'
  | 'nodata'
  | 'nxdomain'
  | 'refused'
  | 'formerr'
  | 'notimp'
  /** Not answered at all: too short to carry an id, or itself a response. */
  | 'dropped';

/** The response bytes (null when dropped) and what they say. */
export interface Reply {
  bytes: Buffer | null;
  outcome: Outcome;
  /** The question's name, lower case, when there was one. */
  name: string | null;
}

/** Whether `name` (lower case) is `domain` or below it. */
export function inDomain(name: string, domain: string): boolean {
  return domain !== '' && (name === domain || name.endsWith(`.${domain}`));
}

/** A header-only response with `rcode`, for queries whose question cannot be echoed. */
function bare(query: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(DNS_HEADER_BYTES);
  query.copy(out, 0, 0, 2);
  const flags = query.readUInt16BE(2);
  out.writeUInt16BE(
    FLAG_QR | (flags & (OPCODE_MASK << OPCODE_SHIFT)) | (flags & packet.RECURSION_DESIRED) | rcode,
    2,
  );
  return out;
}

function soa(domain: string): packet.Answer {
  return {
    type: 'SOA',
    name: domain,
    ttl: SOA_MINIMUM_S,
    data: {
      mname: domain,
      rname: `hostmaster.${domain}`,
      serial: 1,
      refresh: SOA_REFRESH_S,
      retry: SOA_RETRY_S,
      expire: SOA_EXPIRE_S,
      minimum: SOA_MINIMUM_S,
    },
  };
}

/**
 * Answers `query` (the bytes of one UDP datagram) from `table`. Never throws. Answers are
 * authoritative, without recursion; one question per query (RFC 9619); over 512 bytes the answer
 * is cut to the header and question with TC set.
 */
export function answerQuery(table: DnsTable, query: Buffer): Reply {
  if (query.length < DNS_HEADER_BYTES) return { bytes: null, outcome: 'dropped', name: null };
  const flags = query.readUInt16BE(2);
  if ((flags & FLAG_QR) !== 0) return { bytes: null, outcome: 'dropped', name: null };
  if (((flags >> OPCODE_SHIFT) & OPCODE_MASK) !== OPCODE_QUERY)
    return { bytes: bare(query, RCODE_NOTIMP), outcome: 'notimp', name: null };
  let q: packet.DecodedPacket;
  try {
    q = packet.decode(query);
  } catch {
    return { bytes: bare(query, RCODE_FORMERR), outcome: 'formerr', name: null };
  }
  const question = q.questions?.length === 1 ? q.questions[0] : undefined;
  if (
    question === undefined ||
    (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY')
  )
    return {
      bytes: bare(query, question === undefined ? RCODE_FORMERR : RCODE_REFUSED),
      outcome: question === undefined ? 'formerr' : 'refused',
      name: null,
    };
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const base = (flags & packet.RECURSION_DESIRED) | packet.AUTHORITATIVE_ANSWER;
  const respond = (
    rcode: number,
    answers: packet.Answer[],
    authorities: packet.Answer[],
    outcome: Outcome,
    aa = true,
  ): Reply => {
    try {
      let bytes = packet.encode({
        type: 'response',
        id: q.id ?? 0,
        flags: (aa ? base : base & ~packet.AUTHORITATIVE_ANSWER) | rcode,
        questions: [question],
        answers,
        authorities,
      });
      if (bytes.length > DNS_UDP_MAX_BYTES)
        bytes = packet.encode({
          type: 'response',
          id: q.id ?? 0,
          flags: base | packet.TRUNCATED_RESPONSE | rcode,
          questions: [question],
        });
      return { bytes, outcome, name };
    } catch {
      // A question dns-packet decoded but cannot encode again (a label with a dot in it, say).
      return { bytes: bare(query, RCODE_FORMERR), outcome: 'formerr', name };
    }
  };
  if (!inDomain(name, table.domain)) return respond(RCODE_REFUSED, [], [], 'refused', false);
  const found = table.names.get(name);
  if (found === undefined) {
    if (name === table.domain) {
      return question.type === 'SOA'
        ? respond(RCODE_NOERROR, [soa(table.domain)], [], 'answer')
        : respond(RCODE_NOERROR, [], [soa(table.domain)], 'nodata');
    }
    return respond(RCODE_NXDOMAIN, [], [soa(table.domain)], 'nxdomain');
  }
  const answers: packet.Answer[] = [];
  const any = (question.type as string) === 'ANY';
  if (question.type === 'A' || any)
    for (const ip of found.v4)
      answers.push({ type: 'A', name: question.name, ttl: MESH_TTL_S, data: ip });
  if (question.type === 'AAAA' || any)
    for (const ip of found.v6)
      answers.push({ type: 'AAAA', name: question.name, ttl: MESH_TTL_S, data: ip });
  return answers.length > 0
    ? respond(RCODE_NOERROR, answers, [], 'answer')
    : respond(RCODE_NOERROR, [], [soa(table.domain)], 'nodata');
}

/** A standard query for `name` of `type` with `id` (RD set), as a stub resolver sends it. */
export function encodeQuery(name: string, type: 'A' | 'AAAA', id: number): Buffer {
  return packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

/** The A and AAAA addresses of a response, or null when it is not one (benchmarks check with it). */
export function answersOf(response: Buffer): string[] | null {
  try {
    const d = packet.decode(response);
    return (d.answers ?? []).flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : []));
  } catch {
    return null;
  }
}
