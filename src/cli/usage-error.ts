/** Bad flags or a missing argument: exit code 2 and a pointer to --help. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose --help to point at. */
    readonly command?: string,
  ) {
    super(message);
  }
}
