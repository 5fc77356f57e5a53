import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'docs/api/**',
      'node_modules/**',
      'coverage/**',
      'test/compat/node_modules/**',
      'test/consumers/.packed/**',
      'test/consumers/*/node_modules/**',
      'test/consumers/*/dist/**',
      'test/consumers/*/dist-e2e/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='exit']",
          message: 'The library never exits the process.',
        },
      ],
    },
  },
  {
    files: ['lib/node/**/*.ts', 'lib/discovery/**/*.ts', 'lib/data-plane/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@nestjs/*', '../nest/*'], message: 'The core never imports Nest.' }] },
      ],
    },
  },
  {
    files: [
      'test/**/*.ts',
      'bench/**/*.ts',
      'sample/**/*.ts',
      'bin/**/*.js',
      'sample/**/*.js',
      'bench/**/*.js',
      'scripts/**/*.js',
      'test/consumers/**',
    ],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
