// Preloaded (NODE_OPTIONS --require) into a companion by hostProcess.ts `slow-companion`: a
// slow start, as on a loaded machine, before the companion's own code runs.
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
