import tseslint from 'typescript-eslint';

/** Folders import downwards only: guard ← common, companion ← ui ← extension.ts. */
const vscodeFree = { name: 'vscode', message: 'Only src/ui and src/extension.ts talk to VS Code.' };

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', '.vscode-test/**', 'test/fixture/build/**', 'test/workspace/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      curly: ['error', 'multi-line'],
      'no-restricted-imports': 'off',
    },
  },
  {
    // The engine must stay usable from plain Node, and knows nothing of its companion.
    files: ['src/guard/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [vscodeFree],
          patterns: [{ group: ['**/companion/**', '**/ui/**', '**/common/**'], message: 'src/guard is the bottom layer.' }],
        },
      ],
    },
  },
  {
    // The companion runs without VS Code (a detached Node process, or as root).
    files: ['src/companion/**/*.ts', 'src/common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [vscodeFree], patterns: [{ group: ['**/ui/**', '**/ui'], message: 'The VS Code layer sits on top.' }] },
      ],
    },
  },
  {
    // The VS Code layer reaches the engine through its front door only.
    files: ['src/ui/**/*.ts', 'src/extension.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/guard/*'], message: 'Import the engine from its index (src/guard), not its modules.' }] },
      ],
    },
  },
);
