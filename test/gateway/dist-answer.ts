// A distribution API answer read whole, with the error code of its body when it has one.
export interface DistAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
  code?: string;
}

export async function distAnswer(res: Response): Promise<DistAnswer> {
  const body = Buffer.from(await res.arrayBuffer());
  let code: string | undefined;
  try {
    code = (JSON.parse(body.toString('utf8')) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    // not an error body
  }
  return { status: res.status, headers: res.headers, body, code };
}
