// For the bench (npm run bench): stops at a `debugger;` statement as many times as its first
// argument says, running 100 ms between two stops.
const stops = Number(process.argv[2] || 20);
let count = 0;
function stopAgain() {
  if (count++ >= stops) return;
  debugger;
  setTimeout(stopAgain, 100);
}
stopAgain();
