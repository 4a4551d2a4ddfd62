export function Files({ ws, path }: { ws: string; path: string }) {
  return (
    <section>
      <h1>Files</h1>
      <p>
        {ws} {path}
      </p>
    </section>
  );
}
