/**
 * Text from a source (a query name, a log name) as topic levels below a beat's prefix: `/` still
 * separates levels, the MQTT wildcards `+` and `#` and the NUL character become `_`, and an empty
 * text becomes `_`, so any source name yields a valid topic.
 */
export function topicPath(text: string): string {
  const safe = text.replace(/[+#]|\0/g, '_');
  return safe === '' ? '_' : safe;
}
