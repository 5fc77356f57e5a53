import { describe, expect, it } from '@jest/globals';
import { brand } from '../../lib/node/brand.js';

// Two loads of the same module (the package's ESM and CommonJS builds) make two sets of classes with
// the same names: each call of copy() stands for one load.
function copy() {
  class Base extends Error {
    static {
      brand(this, 'TestBase');
    }
  }
  class Child extends Base {
    static {
      brand(this, 'TestChild');
    }
  }
  return { Base, Child };
}

describe('brand', () => {
  const one = copy();
  const two = copy();

  it('makes instanceof hold for the same class of another copy, and its subclasses', () => {
    expect(one.Base).not.toBe(two.Base);
    expect(new one.Base() instanceof two.Base).toBe(true);
    expect(new one.Child() instanceof two.Base).toBe(true);
    expect(new one.Child() instanceof two.Child).toBe(true);
  });

  it('does not take a parent for its child, nor a stranger for either', () => {
    expect(new one.Base() instanceof two.Child).toBe(false);
    expect(new Error('x') instanceof one.Base).toBe(false);
    expect({ name: 'TestBase' } instanceof one.Base).toBe(false);
    expect((null as unknown) instanceof one.Base).toBe(false);
    expect(('TestBase' as unknown) instanceof one.Base).toBe(false);
  });

  it('leaves subclasses that are not branded with plain instanceof', () => {
    class Own extends one.Base {}
    expect(new Own() instanceof two.Base).toBe(true);
    expect(new Own() instanceof Own).toBe(true);
    expect(new one.Base() instanceof Own).toBe(false);
    expect(new two.Base() instanceof Own).toBe(false);
  });
});
