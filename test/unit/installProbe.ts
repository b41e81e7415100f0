// Started by installTools.test.ts, usually through `npm run` so that the outer npm's npm_*
// variables are really in its environment, as they are under `npm test` and `npm run demo`.
// Installs a package with the code ensureCodeServer uses (installIntoCache with Node 24 first on
// PATH) and writes what happened to a JSON file.
//
//   node installProbe.js <prefix> <package spec> <file marking a complete install> <result file>
import { writeFileSync } from 'node:fs';
import { installIntoCache } from '../runner/cacheInstall';
import { node24InstallEnvironment } from '../runner/tools';

export interface ProbeResult {
  readonly ok: boolean;
  readonly message?: string;
  /** The user agent the outer npm handed us: proof that the nested install had one to inherit. */
  readonly outerUserAgent?: string;
}

const [prefix, spec, installed, resultFile] = process.argv.slice(2);
let result: ProbeResult;
try {
  installIntoCache(prefix, spec, node24InstallEnvironment(), installed);
  result = { ok: true, outerUserAgent: process.env.npm_config_user_agent };
} catch (error) {
  result = { ok: false, message: (error as Error).message, outerUserAgent: process.env.npm_config_user_agent };
}
writeFileSync(resultFile, JSON.stringify(result));
