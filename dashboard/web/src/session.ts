// The signed-in session: who, which org, which role and scopes. The API key
// is sent once to POST /v1/sessions and never kept; the session lives in an
// HttpOnly cookie, and its CSRF token in memory (GET /v1/session gives it
// back after a reload).
import { api, ApiError, onSessionLost, setCsrf } from "./api";
import { store } from "./store";

export interface User {
  id: string;
  name: string;
  email?: string;
}
export interface Org {
  id: string;
  name: string;
}
export interface Session {
  csrfToken: string;
  expiresAt: string;
  user: User;
  org: Org;
  role: "admin" | "member";
  scopes: string[];
}

/** undefined: not known yet; null: signed out. */
export const session = store<Session | null | undefined>(undefined);

function adopt(s: Session | null) {
  setCsrf(s ? s.csrfToken : "");
  session.set(s);
}

onSessionLost(() => adopt(null));

/** restore asks the server whether the cookie still holds a session. */
export async function restore() {
  try {
    const r = await api.get<Session>("/v1/session");
    adopt(r.data);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) adopt(null);
    else {
      adopt(null);
      throw e;
    }
  }
}

export async function signIn(apiKey: string) {
  const r = await api.post<Session>("/v1/sessions", { apiKey });
  adopt(r.data);
}

export async function signOut() {
  try {
    await api.del("/v1/session");
  } finally {
    adopt(null);
  }
}

export const isAdmin = (s: Session | null | undefined) => !!s && s.role === "admin";
