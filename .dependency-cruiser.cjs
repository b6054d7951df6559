// dependency-cruiser rules for the house in /DESIGN (README "Layout"): data flows one way,
// app -> bridges -> detect -> capture -> broker, and only the engine seam touches Aedes.
// `npm run lint` runs `depcruise` with this file; any rule broken fails it.

/** Folders above each layer, which it must not import. */
const above = {
  broker: ['app', 'capture', 'detect', 'bridges', 'elastic'],
  capture: ['app', 'detect', 'bridges', 'elastic'],
  detect: ['app', 'bridges', 'elastic'],
  bridges: ['app', 'detect'],
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
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'aedes-only-in-the-engine',
      comment:
        'Aedes, its persistences and emitters are imported by broker/engine/ only (the seam that holds every patch of upstream behaviour); ' +
        'the bench compares bare Aedes, so its Aedes server is exempt.',
      severity: 'error',
      from: { pathNot: ['^broker/engine/', '^bench/harness/servers/aedes\\.ts$'] },
      to: { path: '^node_modules/(aedes|aedes-[^/]+|mqemitter[^/]*)/' },
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
