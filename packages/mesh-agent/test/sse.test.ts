import { describe, expect, it } from 'vitest';
import { SseParser } from '../src/control/sse.js';

describe('SseParser', () => {
  it('dispatches events split anywhere across chunks', () => {
    const text =
      ': ping\n\nevent: map\nid: 3\ndata: {"a":\ndata: 1}\n\nevent: state\r\ndata: x\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(events).toEqual([
        { event: 'map', data: '{"a":\n1}', id: '3' },
        { event: 'state', data: 'x', id: '3' },
      ]);
    }
  });

  it('ignores comments and events without data, and defaults the event name', () => {
    const p = new SseParser();
    expect(p.push(': keepalive\n\nevent: x\n\ndata: hi\n\n')).toEqual([
      { event: 'message', data: 'hi', id: null },
    ]);
  });
});
