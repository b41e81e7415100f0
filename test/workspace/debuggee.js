// A program for the debug-session tests: it stops at each `debugger;` statement when run
// under a debugger, and steps through the lines between them.
let count = 0;
debugger;
count += 1;
count += 2;
count += 3;
debugger;
console.log(`count is ${count}`);
