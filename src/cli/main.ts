#!/usr/bin/env node
// Entry point of the `bkcache` binary.
import { errorLine, main } from './run.js';

// Deprecation warnings speak to developers of the libraries underneath (e.g.
// grpc-js naming an IP as the TLS server name), not to the user of a command.
process.noDeprecation = true;

// A reader that stops early (`bkcache du ... | head`) closes the pipe: the
// next write fails with EPIPE, which, unhandled, ended the process with a
// stack trace and exit 1. What is left to print has no reader; the command
// still finishes and exits with its own code (a pipeline with pipefail sees
// verify's 5).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(errorLine(err) + '\n');
    process.exitCode = 1;
  },
);
