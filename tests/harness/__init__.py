"""Test harness shared by pytest, molecule and the demo: collection tree, ansible-playbook runner."""
