// The one glob syntax of the settings (crosvmGuard.processNames, crosvmGuard.excludeLabels):
// `*` any run of characters, `?` one character, everything else literal.

/** One regular expression that matches a whole string against any of `globs`; undefined for none. */
export function globsRegExp(globs: readonly string[]): RegExp | undefined {
  if (globs.length === 0) return undefined;
  const alternatives = globs.map((glob) =>
    glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.'),
  );
  return new RegExp(`^(?:${alternatives.join('|')})$`, 's');
}
