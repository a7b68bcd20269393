"""The target interpreter: installers, virtual environments, and the transactional install."""
