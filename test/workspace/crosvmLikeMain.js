// A Node program that plays a crosvm main process when started through a link named
// `crosvm`: it forks two "device" processes, then stops at `debugger;` with them running.
const { spawn } = require('node:child_process');
const devices = [spawn('sleep', ['60'], { stdio: 'ignore' }), spawn('sleep', ['60'], { stdio: 'ignore' })];
console.log(`devices ${devices.map((d) => d.pid).join(' ')}`);
setTimeout(() => {
  debugger;
  for (const device of devices) device.kill();
}, 300);
