// Prints vitest's JSON reports (one per phase of scripts/test.sh) as one plain closing line,
// "N passed, N failed", so tools that read the last line of a test run can count the tests.
// A phase whose report is missing (vitest crashed before writing it) is a failure.
import { existsSync, readFileSync } from 'node:fs';
const files = process.argv.length > 2 ? process.argv.slice(2) : ['.tmp/vitest.json'];
let passed = 0, failed = 0, skipped = 0, ok = true;
for (const file of files) {
  if (!existsSync(file)) { console.log(`tests: no report at ${file} (that phase did not finish)`); ok = false; continue; }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests; failed += r.numFailedTests;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  if (r.numFailedTests > 0 || r.success === false) ok = false;
}
console.log(`tests: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(ok ? 0 : 1);
