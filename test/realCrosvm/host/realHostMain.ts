// The extension-host entry point (`extensionTestsPath`) of the real-crosvm stage: runs the
// mocha files of this folder (`*.host.js`, a name `node --test` leaves alone) inside the
// extension host of a real workbench, next to crosvm Guard. Started by ../realHost.test.ts.
import { runSuite } from '../../suite/suiteMain';

/** The name the host suite's VMs run as, and the only one its window looks for (no other VM on the machine is touched). */
export const HOST_VM_NAME = 'crosvm_real_host';

export const run = (): Promise<void> => runSuite(__dirname, '.host.js');
