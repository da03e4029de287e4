/**
 * The allowed-IPs table of cryptokey routing (whitepaper §2): a longest-prefix-match map from IPv4
 * and IPv6 prefixes to a value (the peer), as a path-compressed binary trie per family.
 */
import { IPV4_LEN, IPV6_LEN, type IpPrefix } from './ip.js';

const WORD_BITS = 32;
const WORD_SHIFT = 5; // log2(WORD_BITS)
const WORD_BIT_MASK = WORD_BITS - 1;
const BYTE_BITS = 8;
const V4_BITS = IPV4_LEN * BYTE_BITS;
const V6_BITS = IPV6_LEN * BYTE_BITS;
const BYTES_PER_WORD = WORD_BITS / BYTE_BITS;
const BYTE_MASK = 0xff;

type Bits = typeof V4_BITS | typeof V6_BITS;

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

/** Bit `pos` (0 = most significant) of the 128-bit value k0..k3. */
function bitAt(k0: number, k1: number, k2: number, k3: number, pos: number): number {
  const w = pos >>> WORD_SHIFT;
  const v = w === 0 ? k0 : w === 1 ? k1 : w === 2 ? k2 : k3;
  return (v >>> (WORD_BIT_MASK - (pos & WORD_BIT_MASK))) & 1;
}

/**
 * A trie node: the prefix (w0..w3 with host bits zero, m0..m3 its mask, so a match is four
 * xor-and-or operations) and an optional value. Valueless nodes exist only as branch points with
 * two children, which keeps the trie minimal after removals.
 */
class Node<T> {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  readonly m0: number;
  readonly m1: number;
  readonly m2: number;
  readonly m3: number;
  readonly cidr: number;
  readonly bits: Bits;
  parent: Node<T> | null = null;
  child0: Node<T> | null = null;
  child1: Node<T> | null = null;
  hasValue = false;
  value: T | undefined = undefined;

  constructor(bits: Bits, cidr: number, k0: number, k1: number, k2: number, k3: number) {
    this.bits = bits;
    this.cidr = cidr;
    this.m0 = wordMask(cidr, 0);
    this.m1 = wordMask(cidr, 1);
    this.m2 = wordMask(cidr, 2);
    this.m3 = wordMask(cidr, 3);
    this.w0 = k0 & this.m0;
    this.w1 = k1 & this.m1;
    this.w2 = k2 & this.m2;
    this.w3 = k3 & this.m3;
  }

  /** Number of leading bits shared with k0..k3, capped at this node's cidr. */
  commonBits(k0: number, k1: number, k2: number, k3: number): number {
    let x = (this.w0 ^ k0) & this.m0;
    let n = 0;
    if (x === 0) {
      n = WORD_BITS;
      x = (this.w1 ^ k1) & this.m1;
      if (x === 0) {
        n += WORD_BITS;
        x = (this.w2 ^ k2) & this.m2;
        if (x === 0) {
          n += WORD_BITS;
          x = (this.w3 ^ k3) & this.m3;
          if (x === 0) return this.cidr;
        }
      }
    }
    return Math.min(n + Math.clz32(x), this.cidr);
  }

  address(): Uint8Array {
    const out = new Uint8Array(this.bits / BYTE_BITS);
    const words = [this.w0, this.w1, this.w2, this.w3];
    for (let i = 0; i < out.length; i++) {
      const shift = BYTE_BITS * (BYTES_PER_WORD - 1 - (i % BYTES_PER_WORD));
      out[i] = (words[Math.floor(i / BYTES_PER_WORD)]! >>> shift) & BYTE_MASK;
    }
    return out;
  }
}

/**
 * Maps IP prefixes to values with longest-prefix-match lookup, IPv4 and IPv6 in separate tries.
 * Each prefix maps to one value; a value may own many prefixes, listed by `entriesFor` in
 * insertion order (re-inserting a prefix moves it last), as the kernel and wireguard-go list a
 * peer's allowed IPs. Values are compared with `===`. Lookups allocate nothing.
 */
export class AllowedIps<T> {
  private root4: Node<T> | null = null;
  private root6: Node<T> | null = null;
  private readonly byValue = new Map<T, Set<Node<T>>>();
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
    const bits = checkPrefix(address, cidr);
    const v6 = bits === V6_BITS;
    const k0 = word(address, 0);
    const k1 = v6 ? word(address, 4) : 0;
    const k2 = v6 ? word(address, 8) : 0;
    const k3 = v6 ? word(address, 12) : 0;
    const root = v6 ? this.root6 : this.root4;
    if (root === null) {
      const leaf = new Node<T>(bits, cidr, k0, k1, k2, k3);
      this.setRoot(bits, leaf);
      this.assign(leaf, value);
      return;
    }
    let node: Node<T> = root;
    for (;;) {
      const common = Math.min(node.commonBits(k0, k1, k2, k3), cidr);
      if (common === node.cidr) {
        if (common === cidr) {
          this.assign(node, value);
          return;
        }
        const bit = bitAt(k0, k1, k2, k3, node.cidr);
        const next: Node<T> | null = bit === 0 ? node.child0 : node.child1;
        if (next === null) {
          const leaf = new Node<T>(bits, cidr, k0, k1, k2, k3);
          attach(node, bit, leaf);
          this.assign(leaf, value);
          return;
        }
        node = next;
        continue;
      }
      // The new prefix leaves the path inside `node`'s prefix: a new node takes node's place.
      const leaf = new Node<T>(bits, cidr, k0, k1, k2, k3);
      if (common === cidr) {
        this.replaceChild(node, leaf);
        attach(leaf, bitAt(node.w0, node.w1, node.w2, node.w3, cidr), node);
      } else {
        const branch = new Node<T>(bits, common, k0, k1, k2, k3);
        this.replaceChild(node, branch);
        const bit = bitAt(k0, k1, k2, k3, common);
        attach(branch, bit, leaf);
        attach(branch, bit ^ 1, node);
      }
      this.assign(leaf, value);
      return;
    }
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
    const a = word(packet, offset);
    let node = this.root4;
    let found: T | undefined;
    while (node !== null && ((a ^ node.w0) & node.m0) === 0) {
      if (node.hasValue) found = node.value;
      const cidr = node.cidr;
      if (cidr === V4_BITS) break;
      node = ((a >>> (WORD_BIT_MASK - cidr)) & 1) === 0 ? node.child0 : node.child1;
    }
    return found;
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
    const a0 = word(packet, offset);
    const a1 = word(packet, offset + 4);
    const a2 = word(packet, offset + 8);
    const a3 = word(packet, offset + 12);
    let node = this.root6;
    let found: T | undefined;
    while (
      node !== null &&
      (((a0 ^ node.w0) & node.m0) |
        ((a1 ^ node.w1) & node.m1) |
        ((a2 ^ node.w2) & node.m2) |
        ((a3 ^ node.w3) & node.m3)) ===
        0
    ) {
      if (node.hasValue) found = node.value;
      const cidr = node.cidr;
      if (cidr === V6_BITS) break;
      node = bitAt(a0, a1, a2, a3, cidr) === 0 ? node.child0 : node.child1;
    }
    return found;
  }

  /**
   * Removes `address`/`cidr` (host bits ignored) if it maps to `value`. Returns whether it did.
   * Throws as `insert` does for a malformed prefix.
   */
  remove(address: Uint8Array, cidr: number, value: T): boolean {
    const bits = checkPrefix(address, cidr);
    const v6 = bits === V6_BITS;
    const k0 = word(address, 0);
    const k1 = v6 ? word(address, 4) : 0;
    const k2 = v6 ? word(address, 8) : 0;
    const k3 = v6 ? word(address, 12) : 0;
    let node = v6 ? this.root6 : this.root4;
    while (node !== null && node.cidr <= cidr && node.commonBits(k0, k1, k2, k3) === node.cidr) {
      if (node.cidr === cidr) {
        if (!node.hasValue || node.value !== value) return false;
        this.byValue.get(value)?.delete(node);
        if (this.byValue.get(value)?.size === 0) this.byValue.delete(value);
        this.removeNode(node);
        return true;
      }
      node = bitAt(k0, k1, k2, k3, node.cidr) === 0 ? node.child0 : node.child1;
    }
    return false;
  }

  /** Removes every prefix that maps to `value` (all allowed IPs of a peer). */
  removeValue(value: T): void {
    const nodes = this.byValue.get(value);
    if (nodes === undefined) return;
    this.byValue.delete(value);
    for (const node of nodes) this.removeNode(node);
  }

  /**
   * The prefixes that map to `value`, in insertion order (a re-inserted prefix counts as new), with
   * host bits zero. Returns fresh objects and bytes owned by the caller.
   */
  entriesFor(value: T): IpPrefix[] {
    const nodes = this.byValue.get(value);
    if (nodes === undefined) return [];
    return Array.from(nodes, (n) => ({ address: n.address(), cidr: n.cidr }));
  }

  /** Removes everything. */
  clear(): void {
    this.root4 = null;
    this.root6 = null;
    this.byValue.clear();
    this.count = 0;
  }

  /**
   * For tests: checks the trie's structural invariants (parent links, prefixes nested and
   * branching on the right bit, no valueless node without two children, value index exact) and returns
   * the number of nodes. Throws Error on a violation.
   * @internal
   */
  debugCheck(): number {
    let nodes = 0;
    let valued = 0;
    const walk = (n: Node<T> | null, parent: Node<T> | null, bit: number): void => {
      if (n === null) return;
      nodes++;
      if (n.parent !== parent) throw new Error('bad parent link');
      if (parent !== null) {
        if (n.cidr <= parent.cidr) throw new Error('child prefix not longer');
        if (parent.commonBits(n.w0, n.w1, n.w2, n.w3) !== parent.cidr)
          throw new Error('not nested');
        if (bitAt(n.w0, n.w1, n.w2, n.w3, parent.cidr) !== bit) throw new Error('wrong side');
      }
      if (n.hasValue) {
        valued++;
        if (!this.byValue.get(n.value as T)?.has(n)) throw new Error('value index missing node');
      } else if (n.child0 === null || n.child1 === null) {
        throw new Error('valueless node without two children');
      }
      walk(n.child0, n, 0);
      walk(n.child1, n, 1);
    };
    walk(this.root4, null, 0);
    walk(this.root6, null, 0);
    let indexed = 0;
    for (const set of this.byValue.values()) {
      if (set.size === 0) throw new Error('empty value index entry');
      indexed += set.size;
    }
    if (valued !== this.count || indexed !== this.count) throw new Error('count mismatch');
    return nodes;
  }

  private assign(node: Node<T>, value: T): void {
    if (node.hasValue) {
      const old = this.byValue.get(node.value as T)!;
      old.delete(node);
      if (old.size === 0 && node.value !== value) this.byValue.delete(node.value as T);
    } else {
      this.count++;
    }
    node.hasValue = true;
    node.value = value;
    let set = this.byValue.get(value);
    if (set === undefined) {
      set = new Set();
      this.byValue.set(value, set);
    }
    set.add(node);
  }

  /** Clears `node`'s value and removes nodes that no longer branch. The value index is the caller's. */
  private removeNode(node: Node<T>): void {
    this.count--;
    node.hasValue = false;
    node.value = undefined;
    if (node.child0 !== null && node.child1 !== null) return;
    const only = node.child0 ?? node.child1;
    const parent = node.parent;
    this.replaceChild(node, only);
    if (only !== null || parent === null || parent.hasValue) return;
    // `parent` was a branch point and now has a single child: splice it out too.
    this.replaceChild(parent, parent.child0 ?? parent.child1);
  }

  /** Puts `next` where `node` hangs (a parent's child slot or the root). */
  private replaceChild(node: Node<T>, next: Node<T> | null): void {
    const parent = node.parent;
    if (next !== null) next.parent = parent;
    if (parent === null) this.setRoot(node.bits, next);
    else if (parent.child0 === node) parent.child0 = next;
    else parent.child1 = next;
    node.parent = null;
  }

  private setRoot(bits: Bits, node: Node<T> | null): void {
    if (bits === V4_BITS) this.root4 = node;
    else this.root6 = node;
  }
}

function attach<T>(parent: Node<T>, bit: number, child: Node<T>): void {
  child.parent = parent;
  if (bit === 0) parent.child0 = child;
  else parent.child1 = child;
}

function checkPrefix(address: Uint8Array, cidr: number): Bits {
  if (!(address instanceof Uint8Array)) throw new TypeError('address must be a Uint8Array');
  let bits: Bits;
  if (address.length === IPV4_LEN) bits = V4_BITS;
  else if (address.length === IPV6_LEN) bits = V6_BITS;
  else throw new RangeError(`address must be 4 or 16 bytes, got ${address.length}`);
  if (!Number.isInteger(cidr) || cidr < 0 || cidr > bits) {
    throw new RangeError(`cidr must be an integer in 0..${bits}, got ${cidr}`);
  }
  return bits;
}
