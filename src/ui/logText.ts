// The lines the extension writes to its log (Output → crosvm Guard) about freezes, resumes and
// discovery: one place for their wording, so that the code that logs stays short.
import type { FreezeReport, ProcessIdentity, ResumeReport } from '../guard';
import { plural, skipWords } from './describe';
import type { VmView } from './viewModel';

const listed = (processes: readonly (ProcessIdentity & { label: string })[]) => processes.map((p) => `${p.label} ${p.pid}`).join(', ');
const processes = (count: number) => plural(count, 'process', 'processes');
const ms = (value: number) => `${value.toFixed(1)} ms`;

export function discoveryLine({ snapshot: vm, swapBuild, method }: VmView): string {
  const devices = `${plural(vm.devices.length, 'device process', 'device processes')} [${listed(vm.devices)}]`;
  const signals = `signals ${swapBuild.tolerant ? 'safe' : 'unsafe'}: ${swapBuild.evidence}`;
  // The method's reason often restates the evidence ("signals: <evidence>"): said once.
  const why = method.why.replace(swapBuild.evidence, '').replace(/:\s*$/, '');
  return `VM ${vm.main.pid} (${vm.name}), ${devices}; ${signals}; freeze method ${method.method ?? 'none'}${why && why !== 'signals' ? `: ${why}` : ''}`;
}

export function frozeLine(report: FreezeReport): string {
  const skipped = report.skipped.map((s) => `${s.label} ${s.pid} ${skipWords(s)}`).join('; ');
  const what = `${processes(report.frozen.length)} in ${ms(report.elapsedMs)} [${listed(report.frozen)}]`;
  const vm = `VM ${report.vm.pid} (${report.vm.name}), scope ${report.scope}`;
  const partly = report.skipped.some((s) => s.reason === 'traced' || s.reason === 'excluded') ? ' (partly frozen)' : '';
  return `Froze ${vm}${partly}, by ${report.methodReason}: ${what}` + (skipped ? `; not frozen [${skipped}]` : '');
}

export function resumedLine(report: ResumeReport): string {
  const gone = report.gone.length > 0 ? `; gone meanwhile, not signalled [${listed(report.gone)}]` : '';
  const left = (report.leftStopped ?? []).map((p) => `${p.label} ${p.pid} (${p.why})`).join(', ');
  const others = left ? `; left stopped, not ours any more [${left}]` : '';
  return `Resumed ${processes(report.resumed.length)} in ${ms(report.elapsedMs)} [${listed(report.resumed)}]${gone}${others}`;
}

export function tookOverLine(
  vmPid: number,
  ownerPid: number,
  thawedCgroups: number | undefined,
  resumed: number,
  notes: readonly string[],
): string {
  const how = thawedCgroups === undefined ? '' : `thawed ${plural(thawedCgroups, 'freeze cgroup')}, `;
  const more = notes.length > 0 ? ` ${notes.join('; ')}` : '';
  return `Took over VM ${vmPid} from the window of extension host ${ownerPid}: ${how}${processes(resumed)} running again.${more}`;
}

/** What a debug session's automatic freeze or resume did, and in how long. */
export function autoLine(
  what: 'freeze' | 'resume',
  cause: string,
  session: string,
  debuggeePid: number | undefined,
  count: number,
  vms: readonly number[],
  elapsed: number,
): string {
  const debuggee = debuggeePid ? `, debuggee pid ${debuggeePid}` : '';
  return `Auto-${what} on ${cause} (session "${session}"${debuggee}): ${processes(count)} of VM ${vms.join(', ')} in ${ms(elapsed)}.`;
}
