// placeholder until the discovery engineer lands the guard
