#!/usr/bin/env node
// Entry point of the `bkcache` binary.
import { errorLine, main } from './run.js';

// Deprecation warnings speak to developers of the libraries underneath (e.g.
// grpc-js naming an IP as the TLS server name), not to the user of a command.
process.noDeprecation = true;

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(errorLine(err) + '\n');
    process.exitCode = 1;
  },
);
