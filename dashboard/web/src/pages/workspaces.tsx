import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { Link } from "../router";
import { Meter, showError } from "../ui";

export interface Workspace {
  id: string;
  slug: string;
  name: string;
  isPersonal: boolean;
  ownerUserId: string;
  sizeBytes: number;
  quotaBytes: number | null;
}

export function Workspaces() {
  const [list, setList] = useState<Workspace[] | null>(null);
  useEffect(() => {
    api
      .get<{ workspaces: Workspace[] }>("/v1/workspaces")
      .then((r) => setList(r.data.workspaces))
      .catch(showError);
  }, []);
  return (
    <section>
      <h1>Workspaces</h1>
      {list === null ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <ul class="cards">
          {list.map((w) => (
            <li key={w.id} class="card">
              <Link href={`/workspaces/${encodeURIComponent(w.id)}/files`}>{w.name}</Link>
              <Meter used={w.sizeBytes} total={w.quotaBytes ?? -1} label={`Storage of ${w.name}`} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
