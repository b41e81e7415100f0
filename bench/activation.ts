// `npm run bench:activation`: how long activate() takes in a real extension host, read from
// the extension's own log line ("Activated in X ms") over several fresh workbenches, next to
// the time VS Code reports for the whole activation (module load included).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openWorkbench } from '../test/ui/workbench';
import { startFixtureVm, stopAllFixtureVms } from '../test/fixture/fixtureVm';

const runs = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? 5);

function ownLog(logsDir: string): string {
  for (const start of fs.readdirSync(logsDir)) {
    const file = path.join(logsDir, start, 'exthost1', 'crosvm-guard.crosvm-guard', 'crosvm Guard.log');
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  }
  return '';
}

async function main(): Promise<void> {
  await startFixtureVm({ build: 'swap', devices: 10 });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const workbench = await openWorkbench();
    try {
      await workbench.waitForActivation();
      let match: RegExpExecArray | null = null;
      for (let tries = 0; !match && tries < 100; tries++) {
        match = /Activated in ([\d.]+) ms/.exec(ownLog(workbench.server.logsDir));
        if (!match) await workbench.page.waitForTimeout(100);
      }
      if (!match) throw new Error('no "Activated in" line in the extension log');
      times.push(Number(match[1]));
      process.stderr.write(`run ${i + 1}: activate() took ${match[1]} ms\n`);
    } finally {
      await workbench.close();
    }
  }
  times.sort((a, b) => a - b);
  console.log(
    `activate(): median ${times[Math.floor(times.length / 2)].toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms over ${runs} fresh workbenches (budget 50 ms)`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => stopAllFixtureVms());
