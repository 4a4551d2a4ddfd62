// Paginated lists: follow meta.nextCursor so a page shows every item the
// API lists (bounded: the dashboard's lists are for people, not for bulk).
import { api } from "./api";

/** listAll GETs path page by page (limit 200) up to max items. */
export async function listAll<T>(path: string, max = 2000, signal?: AbortSignal): Promise<T[]> {
  const out: T[] = [];
  let cursor = "";
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const r = await api.get<T[]>(`${path}${sep}limit=200${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`, { signal });
    out.push(...r.data);
    if (!r.meta.hasMore || !r.meta.nextCursor || out.length >= max) return out;
    cursor = r.meta.nextCursor;
  }
}
