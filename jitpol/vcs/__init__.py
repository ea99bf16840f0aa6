"""Version control and signatures: the git wrapper (`git`) and SSH approval signatures (`sshsig`)."""
