/**
 * Decodes standard base64 strictly (padding optional): undefined for anything that is not
 * the canonical encoding of some bytes. Node's decoder skips bad characters and a dangling
 * last character, which would turn a truncated hash into a shorter valid-looking one.
 */
export function decodeBase64(text: string): Buffer | undefined {
  const bare = text.replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(bare) || bare.length % 4 === 1) return undefined;
  if (bare.length !== text.length && text.length % 4 !== 0) return undefined; // padding only up to a multiple of 4
  const bytes = Buffer.from(bare, 'base64');
  return bytes.toString('base64').replace(/=+$/, '') === bare ? bytes : undefined;
}
