"""Scripts that run inside the target interpreter (stdlib + torch + sageattention only).

They are copied into a folder of their own and run there (see ``environment/scripts.py``);
nothing here imports the rest of sage_tasks.
"""
