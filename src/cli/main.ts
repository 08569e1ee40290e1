#!/usr/bin/env node
// Entry point of the `bkcache` binary.
import { errorLine, main } from './run.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(errorLine(err) + '\n');
    process.exitCode = 1;
  },
);
