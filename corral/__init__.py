"""corral"""
