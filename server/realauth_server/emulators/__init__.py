"""Local emulators of the vendors: the sandbox, and the test double served over real HTTP."""
