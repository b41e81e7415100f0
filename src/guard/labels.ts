// crosvm's device labels and what the kernel makes of them. A device process names itself
// after its debug label, and the kernel keeps 15 bytes of it (`comm`): `pcivirtio-console`
// shows as `pcivirtio-conso`. The table below undoes the cut where exactly one label fits.
import { SWAP_MONITOR_LABEL } from './swapBuild';

/** The kernel's limit on a process name (TASK_COMM_LEN 16, with the terminating zero). */
export const COMM_BYTES = 15;

/**
 * crosvm's virtio device types (devices/src/virtio/mod.rs, `impl Display for DeviceType`):
 * a device's debug label is `virtio-<type>`, and `pcivirtio-<type>` behind the PCI transport.
 */
const VIRTIO_TYPES = [
  '9p',
  'balloon',
  'block',
  'console',
  'fs',
  'gpu',
  'input',
  'iommu',
  'mac80211-hwsim',
  'net',
  'pmem',
  'rng',
  'scmi',
  'scsi',
  'snd',
  'sound',
  'tpm',
  'vhost-user',
  'video-decoder',
  'video-encoder',
  'vsock',
  'wl',
];

/** Labels crosvm gives its processes (the ones a 15-byte name can cut, and a few others). */
export const CROSVM_LABELS: readonly string[] = [
  ...VIRTIO_TYPES.flatMap((type) => [`virtio-${type}`, `pcivirtio-${type}`]),
  SWAP_MONITOR_LABEL,
  'serial',
  'jail warden',
  'mkfs process',
];

/** Whether the kernel may have cut `comm`: it is as long as a process name can be. */
export function mayBeCut(comm: string): boolean {
  return Buffer.byteLength(comm, 'utf8') === COMM_BYTES;
}

/**
 * The label crosvm gave a process whose name the kernel cut to `comm`, when exactly one of
 * crosvm's labels is that long and starts so (`pcivirtio-conso` → `pcivirtio-console`);
 * undefined otherwise (not cut, unknown, or ambiguous like `pcivirtio-video`).
 */
export function fullLabel(comm: string): string | undefined {
  if (!mayBeCut(comm)) return undefined;
  const fits = CROSVM_LABELS.filter((label) => label.length > comm.length && label.startsWith(comm));
  return fits.length === 1 ? fits[0] : undefined;
}
