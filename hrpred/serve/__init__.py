"""hrpred.serve"""
