// Prints vitest's JSON report as one plain closing line, "N passed, N failed",
// so tools that read the last line of a test run can count the tests.
import { readFileSync } from 'node:fs';
const file = process.argv[2] ?? '.tmp/vitest.json';
const r = JSON.parse(readFileSync(file, 'utf8'));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(r.numFailedTests > 0 || r.success === false ? 1 : 0);
