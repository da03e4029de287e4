/**
 * The allowed-IPs table of cryptokey routing (whitepaper §2): a longest-prefix-match map from IPv4
 * and IPv6 prefixes to a value (the peer), as a path-compressed binary trie per family.
 */
import { IPV4_LEN, IPV6_LEN, type IpPrefix } from './ip.js';

const WORD_BITS = 32;
const WORD_SHIFT = 5; // log2(WORD_BITS)
const WORD_BIT_MASK = WORD_BITS - 1;
const BYTE_BITS = 8;
const BYTE_MASK = 0xff;
const BYTES_PER_WORD = WORD_BITS / BYTE_BITS;
const V4_BITS = IPV4_LEN * BYTE_BITS;
const V6_BITS = IPV6_LEN * BYTE_BITS;

/*
 * Nodes live in one Int32Array per family (struct of arrays, no objects): V8 keeps int32 values
 * there unboxed, and a lookup touches a few consecutive cache lines instead of chasing boxed
 * object fields. A node is `stride` ints: its prefix words (host bits zero), META (cidr, and
 * HAS_VALUE), then the two children. Id 0 is the null node.
 */
const NULL = 0;
const META_CIDR_MASK = 0xff;
const META_HAS_VALUE = 0x100;
const V4_STRIDE = 4; // w0, meta, child0, child1
const V4_STRIDE_SHIFT = 2;
const V6_STRIDE = 8; // w0..w3, meta, child0, child1, unused
const V6_STRIDE_SHIFT = 3;
const INITIAL_NODES = 16;

/** The network-order 32-bit word of `b` at `at`, as an int32. */
function word(b: Uint8Array, at: number): number {
  return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
}

/** The mask of the first `cidr` bits of 32-bit word `w` of an address. */
function wordMask(cidr: number, w: number): number {
  const bits = cidr - w * WORD_BITS;
  if (bits <= 0) return 0;
  if (bits >= WORD_BITS) return -1;
  return -1 << (WORD_BITS - bits);
}

/** Bit `pos` (0 = most significant) of the 128-bit value k0..k3; 0 past the end. */
function bitAt(k0: number, k1: number, k2: number, k3: number, pos: number): number {
  const w = pos >>> WORD_SHIFT;
  const v = w === 0 ? k0 : w === 1 ? k1 : w === 2 ? k2 : w === 3 ? k3 : 0;
  return (v >>> (WORD_BIT_MASK - (pos & WORD_BIT_MASK))) & 1;
}

/** One family's trie. Node ids are stable while the node lives; freed ids are reused. */
class Trie<T> {
  readonly bits: number;
  readonly words: number;
  readonly stride: number;
  readonly shift: number;
  readonly meta: number; // offset of META in a node, then child0, child1
  nodes: Int32Array;
  parents: Int32Array;
  values: Array<T | undefined>;
  root = NULL;
  private nextId = 1;
  private free: number[] = [];

  constructor(bits: number) {
    this.bits = bits;
    this.words = bits / WORD_BITS;
    this.stride = bits === V4_BITS ? V4_STRIDE : V6_STRIDE;
    this.shift = bits === V4_BITS ? V4_STRIDE_SHIFT : V6_STRIDE_SHIFT;
    this.meta = this.words;
    this.nodes = new Int32Array(INITIAL_NODES * this.stride);
    this.parents = new Int32Array(INITIAL_NODES);
    this.values = new Array<T | undefined>(INITIAL_NODES).fill(undefined);
  }

  reset(): void {
    this.nodes = new Int32Array(INITIAL_NODES * this.stride);
    this.parents = new Int32Array(INITIAL_NODES);
    this.values = new Array<T | undefined>(INITIAL_NODES).fill(undefined);
    this.root = NULL;
    this.nextId = 1;
    this.free = [];
  }

  cidr(id: number): number {
    return this.nodes[(id << this.shift) + this.meta]! & META_CIDR_MASK;
  }

  hasValue(id: number): boolean {
    return (this.nodes[(id << this.shift) + this.meta]! & META_HAS_VALUE) !== 0;
  }

  setValue(id: number, value: T): void {
    this.nodes[(id << this.shift) + this.meta]! |= META_HAS_VALUE;
    this.values[id] = value;
  }

  child(id: number, bit: number): number {
    return this.nodes[(id << this.shift) + this.meta + 1 + bit]!;
  }

  prefixWord(id: number, w: number): number {
    return w < this.words ? this.nodes[(id << this.shift) + w]! : 0;
  }

  /** Leading bits node `id`'s prefix shares with k0..k3, capped at the node's cidr. */
  commonBits(id: number, k0: number, k1: number, k2: number, k3: number): number {
    const cidr = this.cidr(id);
    const keys = [k0, k1, k2, k3];
    for (let w = 0; w < this.words; w++) {
      const x = this.prefixWord(id, w) ^ keys[w]!;
      if (x !== 0 || (w + 1) * WORD_BITS >= cidr)
        return Math.min(w * WORD_BITS + Math.clz32(x), cidr);
    }
    return cidr;
  }

  address(id: number): Uint8Array {
    const out = new Uint8Array(this.bits / BYTE_BITS);
    for (let i = 0; i < out.length; i++) {
      const shift = BYTE_BITS * (BYTES_PER_WORD - 1 - (i % BYTES_PER_WORD));
      out[i] = (this.prefixWord(id, Math.floor(i / BYTES_PER_WORD)) >>> shift) & BYTE_MASK;
    }
    return out;
  }

  private alloc(cidr: number, k0: number, k1: number, k2: number, k3: number): number {
    let id = this.free.pop();
    if (id === undefined) {
      id = this.nextId++;
      if (id >= this.parents.length) this.grow();
    }
    const b = id << this.shift;
    const keys = [k0, k1, k2, k3];
    for (let w = 0; w < this.words; w++) this.nodes[b + w] = keys[w]! & wordMask(cidr, w);
    this.nodes[b + this.meta] = cidr;
    this.nodes[b + this.meta + 1] = NULL;
    this.nodes[b + this.meta + 2] = NULL;
    this.parents[id] = NULL;
    return id;
  }

  private release(id: number): void {
    this.parents[id] = NULL;
    this.values[id] = undefined;
    this.free.push(id);
  }

  private grow(): void {
    const capacity = this.parents.length * 2;
    const nodes = new Int32Array(capacity * this.stride);
    nodes.set(this.nodes);
    this.nodes = nodes;
    const parents = new Int32Array(capacity);
    parents.set(this.parents);
    this.parents = parents;
    for (let i = this.values.length; i < capacity; i++) this.values.push(undefined);
  }

  private attach(parent: number, bit: number, child: number): void {
    this.parents[child] = parent;
    this.nodes[(parent << this.shift) + this.meta + 1 + bit] = child;
  }

  /** Puts `next` where `id` hangs (a parent's child slot or the root). */
  private replaceChild(id: number, next: number): void {
    const parent = this.parents[id]!;
    if (next !== NULL) this.parents[next] = parent;
    if (parent === NULL) this.root = next;
    else
      this.nodes[(parent << this.shift) + this.meta + 1 + (this.child(parent, 0) === id ? 0 : 1)] =
        next;
    this.parents[id] = NULL;
  }

  /** The node of exactly `k`/`cidr`, created (without a value) if missing. */
  findOrCreate(k0: number, k1: number, k2: number, k3: number, cidr: number): number {
    if (this.root === NULL) {
      this.root = this.alloc(cidr, k0, k1, k2, k3);
      return this.root;
    }
    let id = this.root;
    for (;;) {
      const nodeCidr = this.cidr(id);
      const common = Math.min(this.commonBits(id, k0, k1, k2, k3), cidr);
      if (common === nodeCidr) {
        if (common === cidr) return id;
        const bit = bitAt(k0, k1, k2, k3, nodeCidr);
        const next = this.child(id, bit);
        if (next === NULL) {
          const leaf = this.alloc(cidr, k0, k1, k2, k3);
          this.attach(id, bit, leaf);
          return leaf;
        }
        id = next;
        continue;
      }
      // The new prefix leaves the path inside `id`'s prefix: a new node takes id's place.
      const leaf = this.alloc(cidr, k0, k1, k2, k3);
      const n0 = this.prefixWord(id, 0);
      const n1 = this.prefixWord(id, 1);
      const n2 = this.prefixWord(id, 2);
      const n3 = this.prefixWord(id, 3);
      if (common === cidr) {
        this.replaceChild(id, leaf);
        this.attach(leaf, bitAt(n0, n1, n2, n3, cidr), id);
      } else {
        const branch = this.alloc(common, k0, k1, k2, k3);
        this.replaceChild(id, branch);
        const bit = bitAt(k0, k1, k2, k3, common);
        this.attach(branch, bit, leaf);
        this.attach(branch, bit ^ 1, id);
      }
      return leaf;
    }
  }

  /** The node of exactly `k`/`cidr`, or NULL. */
  find(k0: number, k1: number, k2: number, k3: number, cidr: number): number {
    let id = this.root;
    while (id !== NULL) {
      const nodeCidr = this.cidr(id);
      if (nodeCidr > cidr || this.commonBits(id, k0, k1, k2, k3) !== nodeCidr) return NULL;
      if (nodeCidr === cidr) return id;
      id = this.child(id, bitAt(k0, k1, k2, k3, nodeCidr));
    }
    return NULL;
  }

  /** Clears node `id`'s value and frees nodes that no longer branch (valueless nodes keep two children). */
  clearValue(id: number): void {
    this.nodes[(id << this.shift) + this.meta]! &= ~META_HAS_VALUE;
    this.values[id] = undefined;
    const c0 = this.child(id, 0);
    const c1 = this.child(id, 1);
    if (c0 !== NULL && c1 !== NULL) return;
    const only = c0 !== NULL ? c0 : c1;
    const parent = this.parents[id]!;
    this.replaceChild(id, only);
    this.release(id);
    if (only !== NULL || parent === NULL || this.hasValue(parent)) return;
    // `parent` was a branch point and now has a single child: splice it out too.
    const other = this.child(parent, 0) !== NULL ? this.child(parent, 0) : this.child(parent, 1);
    this.replaceChild(parent, other);
    this.release(parent);
  }

  /** Longest-prefix match of the IPv4 address `a` (int32): the node id, or NULL. */
  lookup4(a: number): number {
    const nodes = this.nodes;
    let id = this.root;
    let found = NULL;
    while (id !== NULL) {
      const b = id << V4_STRIDE_SHIFT;
      const meta = nodes[b + 1]!;
      const cidr = meta & META_CIDR_MASK;
      if (Math.clz32(a ^ nodes[b]!) < cidr) break;
      if ((meta & META_HAS_VALUE) !== 0) found = id;
      // A /32 has no children, so the bit read past its end only selects an empty slot.
      id = nodes[b + 2 + ((a >>> (WORD_BIT_MASK - cidr)) & 1)]!;
    }
    return found;
  }

  /** Longest-prefix match of the IPv6 address a0..a3 (int32 words): the node id, or NULL. */
  lookup6(a0: number, a1: number, a2: number, a3: number): number {
    const nodes = this.nodes;
    let id = this.root;
    let found = NULL;
    while (id !== NULL) {
      const b = id << V6_STRIDE_SHIFT;
      const meta = nodes[b + 4]!;
      const cidr = meta & META_CIDR_MASK;
      // The first differing bit must lie at or past cidr; stop reading words once past cidr.
      let x = a0 ^ nodes[b]!;
      if (x !== 0 || cidr <= WORD_BITS) {
        if (Math.clz32(x) < cidr) break;
      } else {
        x = a1 ^ nodes[b + 1]!;
        if (x !== 0 || cidr <= 2 * WORD_BITS) {
          if (WORD_BITS + Math.clz32(x) < cidr) break;
        } else {
          x = a2 ^ nodes[b + 2]!;
          if (x !== 0 || cidr <= 3 * WORD_BITS) {
            if (2 * WORD_BITS + Math.clz32(x) < cidr) break;
          } else if (3 * WORD_BITS + Math.clz32(a3 ^ nodes[b + 3]!) < cidr) break;
        }
      }
      if ((meta & META_HAS_VALUE) !== 0) found = id;
      const w = cidr >>> WORD_SHIFT;
      const v = w === 0 ? a0 : w === 1 ? a1 : w === 2 ? a2 : a3;
      id = nodes[b + 5 + ((v >>> (WORD_BIT_MASK - (cidr & WORD_BIT_MASK))) & 1)]!;
    }
    return found;
  }
}

/**
 * Maps IP prefixes to values with longest-prefix-match lookup, IPv4 and IPv6 in separate tries.
 * Each prefix maps to one value; a value may own many prefixes, listed by `entriesFor` in
 * insertion order (re-inserting a prefix moves it last), as the kernel and wireguard-go list a
 * peer's allowed IPs. Values are compared with `===`. Lookups allocate nothing.
 */
export class AllowedIps<T> {
  private readonly v4 = new Trie<T>(V4_BITS);
  private readonly v6 = new Trie<T>(V6_BITS);
  /** Each value's nodes as handles (id * 2 + 1 for IPv6), in insertion order. */
  private readonly byValue = new Map<T, Set<number>>();
  private count = 0;

  /** Number of prefixes in the table (IPv4 and IPv6). */
  get size(): number {
    return this.count;
  }

  /**
   * Maps `address`/`cidr` to `value`, replacing the value of an identical prefix. Host bits of
   * `address` past `cidr` are ignored. Keeps no reference to `address`.
   * Throws TypeError if `address` is not a Uint8Array, RangeError if it is not 4 or 16 bytes or
   * `cidr` is not an integer in 0..32 / 0..128.
   */
  insert(address: Uint8Array, cidr: number, value: T): void {
    const v6 = checkPrefix(address, cidr);
    const trie = v6 ? this.v6 : this.v4;
    const id = trie.findOrCreate(
      word(address, 0),
      v6 ? word(address, 4) : 0,
      v6 ? word(address, 8) : 0,
      v6 ? word(address, 12) : 0,
      cidr,
    );
    const handle = id * 2 + (v6 ? 1 : 0);
    if (trie.hasValue(id)) {
      const old = trie.values[id] as T;
      const set = this.byValue.get(old)!;
      set.delete(handle);
      if (set.size === 0 && old !== value) this.byValue.delete(old);
    } else {
      this.count++;
    }
    trie.setValue(id, value);
    let set = this.byValue.get(value);
    if (set === undefined) {
      set = new Set();
      this.byValue.set(value, set);
    }
    set.add(handle);
  }

  /**
   * The value of the longest prefix containing `address` (4 or 16 bytes), or undefined.
   * Throws TypeError/RangeError for a wrong type or length.
   */
  lookup(address: Uint8Array): T | undefined {
    if (!(address instanceof Uint8Array)) throw new TypeError('address must be a Uint8Array');
    if (address.length === IPV4_LEN) return this.lookupV4(address, 0);
    if (address.length === IPV6_LEN) return this.lookupV6(address, 0);
    throw new RangeError(`address must be 4 or 16 bytes, got ${address.length}`);
  }

  /**
   * Longest-prefix match of the IPv4 address in `packet` at `offset` (12 for an IPv4 header's
   * source, 16 for its destination), read in place. Throws RangeError if the 4 bytes are not inside
   * `packet`: callers validate the header first.
   */
  lookupV4(packet: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + IPV4_LEN <= packet.length)) {
      throw new RangeError('address out of bounds');
    }
    const trie = this.v4;
    const id = trie.lookup4(word(packet, offset));
    return id === NULL ? undefined : trie.values[id];
  }

  /**
   * Longest-prefix match of the IPv6 address in `packet` at `offset` (8 for an IPv6 header's
   * source, 24 for its destination), read in place. Throws RangeError if the 16 bytes are not
   * inside `packet`.
   */
  lookupV6(packet: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + IPV6_LEN <= packet.length)) {
      throw new RangeError('address out of bounds');
    }
    const trie = this.v6;
    const id = trie.lookup6(
      word(packet, offset),
      word(packet, offset + 4),
      word(packet, offset + 8),
      word(packet, offset + 12),
    );
    return id === NULL ? undefined : trie.values[id];
  }

  /**
   * Removes `address`/`cidr` (host bits ignored) if it maps to `value`. Returns whether it did.
   * Throws as `insert` does for a malformed prefix.
   */
  remove(address: Uint8Array, cidr: number, value: T): boolean {
    const v6 = checkPrefix(address, cidr);
    const trie = v6 ? this.v6 : this.v4;
    const id = trie.find(
      word(address, 0),
      v6 ? word(address, 4) : 0,
      v6 ? word(address, 8) : 0,
      v6 ? word(address, 12) : 0,
      cidr,
    );
    if (id === NULL || !trie.hasValue(id) || trie.values[id] !== value) return false;
    const set = this.byValue.get(value)!;
    set.delete(id * 2 + (v6 ? 1 : 0));
    if (set.size === 0) this.byValue.delete(value);
    trie.clearValue(id);
    this.count--;
    return true;
  }

  /** Removes every prefix that maps to `value` (all allowed IPs of a peer). */
  removeValue(value: T): void {
    const handles = this.byValue.get(value);
    if (handles === undefined) return;
    this.byValue.delete(value);
    // Clearing frees only the cleared node and valueless branch nodes, so the other handles stay valid.
    for (const h of handles) (h & 1 ? this.v6 : this.v4).clearValue(h >>> 1);
    this.count -= handles.size;
  }

  /**
   * The prefixes that map to `value`, in insertion order (a re-inserted prefix counts as new), with
   * host bits zero. Returns fresh objects and bytes owned by the caller.
   */
  entriesFor(value: T): IpPrefix[] {
    const handles = this.byValue.get(value);
    if (handles === undefined) return [];
    return Array.from(handles, (h) => {
      const trie = h & 1 ? this.v6 : this.v4;
      return { address: trie.address(h >>> 1), cidr: trie.cidr(h >>> 1) };
    });
  }

  /** Removes everything and releases the tries' memory. */
  clear(): void {
    this.v4.reset();
    this.v6.reset();
    this.byValue.clear();
    this.count = 0;
  }

  /**
   * For tests: checks the tries' structural invariants (parent links, prefixes nested and
   * branching on the right bit, no valueless node without two children, value index exact) and
   * returns the number of live nodes. Throws Error on a violation.
   * @internal
   */
  debugCheck(): number {
    let nodes = 0;
    let valued = 0;
    const handles = new Map<number, T>();
    for (const [value, set] of this.byValue) {
      if (set.size === 0) throw new Error('empty value index entry');
      for (const h of set) handles.set(h, value);
    }
    for (const [trie, family] of [
      [this.v4, 0],
      [this.v6, 1],
    ] as const) {
      const walk = (id: number, parent: number, bit: number): void => {
        if (id === NULL) return;
        nodes++;
        if (trie.parents[id] !== parent) throw new Error('bad parent link');
        const cidr = trie.cidr(id);
        const w = [0, 1, 2, 3].map((i) => trie.prefixWord(id, i)) as [
          number,
          number,
          number,
          number,
        ];
        for (let i = 0; i < trie.words; i++) {
          if ((w[i]! & ~wordMask(cidr, i)) !== 0) throw new Error('host bits set in a node');
        }
        if (parent !== NULL) {
          const pc = trie.cidr(parent);
          if (cidr <= pc) throw new Error('child prefix not longer');
          if (trie.commonBits(parent, ...w) !== pc) throw new Error('not nested');
          if (bitAt(...w, pc) !== bit) throw new Error('wrong side');
        }
        if (trie.hasValue(id)) {
          valued++;
          if (handles.get(id * 2 + family) !== trie.values[id])
            throw new Error('value index wrong');
        } else if (trie.child(id, 0) === NULL || trie.child(id, 1) === NULL) {
          throw new Error('valueless node without two children');
        }
        walk(trie.child(id, 0), id, 0);
        walk(trie.child(id, 1), id, 1);
      };
      walk(trie.root, NULL, 0);
    }
    if (valued !== this.count || handles.size !== this.count) throw new Error('count mismatch');
    return nodes;
  }
}

/** Validates a prefix; returns whether it is IPv6. */
function checkPrefix(address: Uint8Array, cidr: number): boolean {
  if (!(address instanceof Uint8Array)) throw new TypeError('address must be a Uint8Array');
  let bits: number;
  if (address.length === IPV4_LEN) bits = V4_BITS;
  else if (address.length === IPV6_LEN) bits = V6_BITS;
  else throw new RangeError(`address must be 4 or 16 bytes, got ${address.length}`);
  if (!Number.isInteger(cidr) || cidr < 0 || cidr > bits) {
    throw new RangeError(`cidr must be an integer in 0..${bits}, got ${cidr}`);
  }
  return bits === V6_BITS;
}
