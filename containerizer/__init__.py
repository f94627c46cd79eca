"""containerizer"""
