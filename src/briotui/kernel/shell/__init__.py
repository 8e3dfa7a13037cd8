"""Commands for agents: the policy (:mod:`.policy`), the runner and sandbox (:mod:`.runner`)
and runs over sessions with the kernel's shell service (:mod:`.session`)."""
