/** One Server-Sent Event. */
export interface SSEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Parses a text/event-stream body into events, as the HTML spec's
 * EventSource does (data lines joined with "\n", comments skipped). When
 * the consumer stops early (break, return, throw) the body is cancelled,
 * which closes the connection.
 */
export async function* parseSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  let done = false;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) {
        done = true;
        buf += decoder.decode();
      } else {
        buf += decoder.decode(chunk.value, { stream: true });
      }
      // A lone "\r" at the end may be the first half of "\r\n": keep it.
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buf);
        if (!m || (m[0] === '\r' && m.index === buf.length - 1 && !done)) break;
        const line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (line === '') {
          if (data.length > 0 || event !== '') {
            yield { id, event: event || 'message', data: data.join('\n') };
          }
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
        else if (field === 'id') id = value;
      }
      if (done) return;
    }
  } finally {
    if (!done) {
      // Stopped early: close the stream. A failure here means it was closed.
      await reader.cancel().catch(() => {});
    }
    reader.releaseLock();
  }
}
