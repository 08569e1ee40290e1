/** Bad flags or a missing argument: exit code 2 and a pointer to --help. */
export class UsageError extends Error {}
