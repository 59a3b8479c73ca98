"""Service functions: the kernel's business logic, keyword-only arguments, no HTTP."""
