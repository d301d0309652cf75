"""Pure domain logic: no framework, no database, no clock or randomness it is not handed."""
