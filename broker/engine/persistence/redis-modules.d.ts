// aedes-persistence-redis and mqemitter ship without TypeScript declarations.
declare module 'aedes-persistence-redis' {
  export default function persistence(opts: Record<string, unknown>): unknown;
}
declare module 'mqemitter' {
  export default function mqemitter(opts?: { concurrency?: number }): object;
}
