"""Support code shared by several test suites and by the benchmarks: the real local control plane
(`controlplane`), the emulator and the operator as processes (`e2e`), the in-memory cluster that drives
real reconcile cycles (`harness`), and the helpers of single suites that their test modules import
(`emulator_api`, `kstatus`, `service_account`, `reliability*`, `random_kills`). Fixtures and hooks stay
in the conftest.py files, which import what they need from here; nothing imports from a conftest."""
