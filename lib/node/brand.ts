const BRAND = Symbol.for('nestjs-kable:class');

type Branded = { [BRAND]?: string };

/**
 * Makes `instanceof` hold across two loaded copies of the package (its ESM and CommonJS builds in one
 * process, the "dual package hazard"): a branded class also accepts an object made by the other copy's
 * class of the same name. Subclasses that are not branded themselves (a user's own error class, say)
 * keep plain `instanceof`. Call it once in the class body: `static { brand(this, 'KableError'); }`.
 */
export function brand(target: abstract new (...args: never[]) => unknown, name: string): void {
  Object.defineProperty(target, BRAND, { value: `nestjs-kable:${name}` });
  if (!Object.hasOwn(target, Symbol.hasInstance)) {
    Object.defineProperty(target, Symbol.hasInstance, { value: isInstance });
  }
}

function isInstance(this: Branded & (abstract new (...args: never[]) => unknown), value: unknown): boolean {
  if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
  if (
    !Object.hasOwn(this, BRAND) ||
    value === null ||
    (typeof value !== 'object' && typeof value !== 'function')
  ) {
    return false;
  }
  const wanted = this[BRAND];
  for (let proto = Object.getPrototypeOf(value); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const maker = Object.hasOwn(proto, 'constructor') ? (proto.constructor as Branded) : undefined;
    if (typeof maker === 'function' && Object.hasOwn(maker, BRAND) && maker[BRAND] === wanted) return true;
  }
  return false;
}
