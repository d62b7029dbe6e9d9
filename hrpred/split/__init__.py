"""hrpred.split"""
