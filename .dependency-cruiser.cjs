// dependency-cruiser rules for the house (docs/architecture.md): imports point one way,
// app -> bridges -> detect -> capture -> broker (elastic/ is a leaf of assets that capture and app use),
// and only the engine seam touches Aedes.
// `npm run lint` runs `depcruise` with this file; any rule broken fails it.

/** Folders above each layer, which it must not import. */
const above = {
  broker: ['app', 'capture', 'detect', 'bridges', 'elastic'],
  elastic: ['app', 'capture', 'detect', 'bridges', 'broker'],
  capture: ['app', 'detect', 'bridges'],
  detect: ['app', 'bridges'],
  bridges: ['app'],
};

const upward = Object.entries(above).map(([layer, forbidden]) => ({
  name: `no-upward-import-from-${layer}`,
  comment: `${layer}/ sits below ${forbidden.join(', ')}: it must not import them.`,
  severity: 'error',
  from: { path: `^${layer}/` },
  to: { path: `^(${forbidden.join('|')})/` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle: the modules cannot be understood, loaded or tested one at a time.',
      severity: 'error',
      // the vendored engine keeps upstream's module layout (broker/engine/vendor/UPSTREAM.md)
      from: { pathNot: '^broker/engine/vendor/' },
      to: { circular: true },
    },
    ...upward,
    {
      name: 'aedes-only-in-the-engine',
      comment:
        'Aedes, its persistences and emitters are imported by broker/engine/ only (the seam that holds every patch of upstream behaviour); ' +
        'the bench compares bare Aedes, so its Aedes server is exempt, and tests may reach the engine to prove a patch.',
      severity: 'error',
      from: { pathNot: ['^broker/engine/', '^bench/harness/servers/aedes\\.ts$', '^test/'] },
      to: { path: ['^node_modules/(aedes|aedes-[^/]+|mqemitter[^/]*)/', '^broker/engine/vendor/'] },
    },
    {
      name: 'no-dev-dependency-in-the-product',
      comment:
        'What `npm ci --omit=dev && npm start` runs may not import a devDependency (aedes 1.2.0 is one: the bench baseline); ' +
        'tests, benchmarks and the build scripts may. Type-only imports are erased and allowed.',
      severity: 'error',
      from: { path: '^(app|broker|capture|detect|bridges|elastic)/', pathNot: ['\\.test\\.ts$', '^broker/http/view/(ui|bundle)'] },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|bench/out|test/peers/target|var|test/fixtures)/' },
    // type-only imports count: a layer that names another's types depends on it all the same
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.json'],
    },
  },
};
