export function Placeholder({ title }: { title: string }) {
  return (
    <section>
      <h1>{title}</h1>
      <p>This page is not built yet.</p>
    </section>
  );
}
