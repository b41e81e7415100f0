// Builds the extension bundle (dist/) and, with --tests, transpiles every TypeScript file
// of src/, test/, bench/ and scripts/ to out/ for plain Node and the extension-host suite.
// Type checking is deliberately separate (`npm run typecheck`): esbuild only strips types.
import * as esbuild from 'esbuild';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
const tests = process.argv.includes('--tests');

/** Prints errors in the `file:line:col: error: text` form that VS Code's $esbuild-watch problem matcher reads. */
const problemMatcherPlugin = {
  name: 'problem-matcher',
  setup(build) {
    build.onStart(() => console.log('[watch] build started'));
    build.onEnd((result) => {
      for (const { text, location } of result.errors) {
        console.error(`✘ [ERROR] ${text}`);
        if (location) console.error(`    ${location.file}:${location.line}:${location.column}:`);
      }
      console.log('[watch] build finished');
    });
  },
};

function typescriptFilesUnder(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'build') continue;
    if (statSync(path).isDirectory()) found.push(...typescriptFilesUnder(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) found.push(path);
  }
  return found;
}

const options = tests
  ? {
      entryPoints: ['src', 'test', 'bench', 'scripts'].flatMap(typescriptFilesUnder),
      outdir: 'out',
      outbase: '.',
      bundle: false,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: true,
      logLevel: 'warning',
    }
  : {
      // The companion is its own small bundle: a detached plain-Node process (src/companion).
      entryPoints: { extension: 'src/extension.ts', companion: 'src/companion/main.ts' },
      outdir: 'dist',
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      external: ['vscode'],
      minify: production,
      sourcemap: !production,
      sourcesContent: false,
      logLevel: 'warning',
      plugins: watch ? [problemMatcherPlugin] : [],
    };

// A deleted or renamed test must not keep running from a stale out/ copy.
if (tests) rmSync('out', { recursive: true, force: true });

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
