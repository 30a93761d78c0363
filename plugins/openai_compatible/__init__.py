# Makes the test modules openai_compatible.tests.* so that several plugins' tests/test_conformance.py can run
# in one pytest session (a bare tests/ package would collide with the other plugins').
