// The bench sampler's reading of a kernel trace (bench/sampler.ts, kernel-trace mode). The lines
// are as this kernel's tracefs printed them for a `sleep` stopped, continued and killed; the
// sampler itself runs on real threads in every `npm run bench` as root.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseTraceLine } from '../../bench/sampler';

describe('bench sampler: trace lines', () => {
  it('reads a switch out in state T as that thread stopping, at the kernel stamp in ns', () => {
    const line =
      '           sleep-8720    [001] d..2.  9434.982618: sched_switch: prev_comm=sleep prev_pid=8720 prev_prio=120 prev_state=T ==> next_comm=bash next_pid=8715 next_prio=120';
    assert.deepEqual(parseTraceLine(line), { tid: 8720, change: 'stopped', at: 9434982618000n });
  });

  it('reads `t` (stopped by a tracer) as stopped too', () => {
    const line =
      '   virtio-dev-3-41   [000] d..2.    12.000001: sched_switch: prev_comm=virtio-dev-3 prev_pid=41 prev_prio=120 prev_state=t ==> next_comm=swapper/0 next_pid=0 next_prio=120';
    assert.deepEqual(parseTraceLine(line), { tid: 41, change: 'stopped', at: 12000001000n });
  });

  it('ignores a switch out in any other state', () => {
    for (const state of ['S', 'R', 'R+', 'D']) {
      const line = `bash-8723 [001] d..2. 9435.086470: sched_switch: prev_comm=sleep prev_pid=8723 prev_prio=120 prev_state=${state} ==> next_comm=sleep next_pid=8720 next_prio=120`;
      assert.equal(parseTraceLine(line), undefined, state);
    }
  });

  it('reads a wake-up as the woken thread, not the waker', () => {
    const line = '            bash-8715    [001] d..4.  9435.084812: sched_wakeup: comm=sleep pid=8720 prio=120 target_cpu=001';
    assert.deepEqual(parseTraceLine(line), { tid: 8720, change: 'woken', at: 9435084812000n });
  });

  it('finds the thread behind a name with spaces and parentheses', () => {
    const line =
      ' weird) dev-77 [001] d..2. 5.5: sched_switch: prev_comm=weird) dev prev_pid=77 prev_prio=120 prev_state=T ==> next_comm=x next_pid=1 next_prio=120';
    assert.deepEqual(parseTraceLine(line), { tid: 77, change: 'stopped', at: 5500000000n });
  });

  it('reads an exit, and nothing from comments or other events', () => {
    const exit = '           sleep-8720    [001] .....  9435.3: sched_process_exit: comm=sleep pid=8720 prio=120 group_dead=1';
    assert.deepEqual(parseTraceLine(exit), { tid: 8720, change: 'exited', at: 9435300000000n });
    assert.equal(parseTraceLine('# tracer: nop'), undefined);
    assert.equal(parseTraceLine('  bash-1 [000] ..... 1.0: tracing_mark_write: crosvm-guard-sampler-stop'), undefined);
  });
});
