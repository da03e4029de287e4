/**
 * An incremental parser for server-sent events (WHATWG HTML "Server-sent events", §9.2.6
 * interpreting an event stream): text chunks in, complete events out. Pure; never throws.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  readonly event: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
  /** The `id:` field, or null. */
  readonly id: string | null;
}

const LINE_BREAK = /\r\n|\r|\n/g;

/** Feeds text chunks of one stream and returns the events each chunk completes. */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private dataLength = 0;
  private id: string | null = null;
  private sawCr = false;
  private readonly maxEventLength: number;
  /** Complete lines seen so far (comments included): how a caller tells a live stream. */
  lines = 0;
  /**
   * Set once an event grew past the limit without ending: the stream is broken (or hostile) and
   * the caller should drop it. The parser keeps nothing of that event.
   */
  tooLarge = false;

  /** `maxEventLength`: most characters one event (its lines together) may have; default no limit. */
  constructor(maxEventLength = Infinity) {
    this.maxEventLength = maxEventLength;
  }

  /** Parses `chunk` (any split of the stream) and returns the events completed by it, in order. */
  push(chunk: string): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.tooLarge) return out;
    let text = chunk;
    // A CRLF split across chunks: the LF belongs to the CR already taken as a line end.
    if (this.sawCr && text.startsWith('\n')) text = text.slice(1);
    this.sawCr = text.endsWith('\r');
    // Only the new text is searched for line ends, so a long line arriving in many chunks costs
    // linear time, not quadratic.
    let start = 0;
    LINE_BREAK.lastIndex = 0;
    for (let m = LINE_BREAK.exec(text); m !== null; m = LINE_BREAK.exec(text)) {
      const piece = text.slice(start, m.index);
      const line = this.buffer === '' ? piece : this.buffer + piece;
      this.buffer = '';
      start = m.index + m[0].length;
      this.lines++;
      this.line(line, out);
      if (this.tooLarge) return out;
    }
    this.buffer += text.slice(start);
    if (this.buffer.length + this.dataLength > this.maxEventLength) this.overflow();
    return out;
  }

  private overflow(): void {
    this.tooLarge = true;
    this.buffer = '';
    this.data = [];
    this.dataLength = 0;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.data.length > 0)
        out.push({
          event: this.event === '' ? 'message' : this.event,
          data: this.data.join('\n'),
          id: this.id,
        });
      this.event = '';
      this.data = [];
      this.dataLength = 0;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') {
      this.data.push(value);
      this.dataLength += value.length + 1;
      if (this.dataLength > this.maxEventLength) this.overflow();
    } else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}
