/**
 * BerthError is every error the API answers: the HTTP status and the
 * error envelope's code, message, request id and, for an error about one
 * request field, that field's JSON path. An error event that ends
 * a stream (status 200 already sent) is a BerthError with status 0 and the
 * event's code. A server that cannot be reached is status 0, code
 * "unreachable", with the fetch error as cause.
 */
export class BerthError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string;
  /**
   * The JSON path of the request field the error is about ("name",
   * "mounts[1].path", "resources.memory"); absent when it is about none.
   */
  readonly field?: string;
  /** Seconds to wait before retrying (429 and 503 with Retry-After). */
  readonly retryAfter?: number;

  constructor(init: { status: number; code: string; message: string; requestId?: string; field?: string; retryAfter?: number; cause?: unknown }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'BerthError';
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? '';
    if (init.field) this.field = init.field;
    if (init.retryAfter !== undefined) this.retryAfter = init.retryAfter;
  }

  /** Turns a failed response into a BerthError, reading its envelope. */
  static async fromResponse(res: Response): Promise<BerthError> {
    const requestId = res.headers.get('X-Request-Id') ?? '';
    const ra = Number(res.headers.get('Retry-After'));
    const retryAfter = Number.isFinite(ra) && ra > 0 ? ra : undefined;
    let text = '';
    try {
      text = await res.text();
    } catch {
      // The body could not be read: the status alone describes the error.
    }
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string; requestId?: string; field?: string } };
      if (body && body.error && typeof body.error.code === 'string') {
        return new BerthError({
          status: res.status,
          code: body.error.code,
          message: body.error.message ?? res.statusText,
          requestId: body.error.requestId || requestId,
          field: typeof body.error.field === 'string' ? body.error.field : undefined,
          retryAfter,
        });
      }
    } catch {
      // Not the envelope (a proxy's page, net/http's plain 416): use the text.
    }
    return new BerthError({
      status: res.status,
      code: `http_${res.status}`,
      message: text.trim() || res.statusText || `HTTP ${res.status}`,
      requestId,
      retryAfter,
    });
  }
}
